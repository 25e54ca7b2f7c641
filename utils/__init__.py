"""Shared helpers every stage imports: checkpoints, seeding, DDP, logging, run folders, safe I/O."""
