"""The baseline preference-optimisation methods, one module each; every method is registered in suite.methods."""
