"""Studies: experiments that choose budgets and defaults on dev carves, and check the
product against the authors' code. Run each as a module from the repository root
(`python -m experiments.NAME`); results go to experiments/results/, write-ups beside this
file (README.md is their index)."""
