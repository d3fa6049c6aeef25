"""Distillation into a few-call student, beside the training core: it hands the Trainer another objective."""
