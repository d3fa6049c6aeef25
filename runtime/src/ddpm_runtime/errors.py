"""The runtime's one exception type for mistakes a user can fix (bad files, bad options)."""


class UserError(Exception):
    """A problem with the user's input. The CLI prints it as one line and exits with code 2.

    Other packages of the project subclass it, so one ``except UserError`` catches them all.
    """
