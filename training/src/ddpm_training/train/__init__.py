"""The training loop and its run: settings, the Trainer, compute choice, DDP, checkpoints, the run folder."""
