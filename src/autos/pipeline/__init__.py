"""What each DVC stage does, as library functions (the stages in ``stages/`` parse arguments and call one)."""
