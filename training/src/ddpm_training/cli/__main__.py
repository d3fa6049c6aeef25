"""`python -m ddpm_training.cli` runs `ddpm` (torchrun takes the module this way)."""

from . import main

main()
