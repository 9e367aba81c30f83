"""Engine: training loop, evaluation, metrics, checkpoints and callbacks."""
