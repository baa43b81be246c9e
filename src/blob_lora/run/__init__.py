"""The machinery behind `blob train` and `blob eval`: a run's settings, its folder, set-up,
optimization loop, checkpoints and evaluation. The library a user imports sits one level up."""
