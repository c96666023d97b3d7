"""Day-2 upgrades from one release to the next (`allmende upgrade plan / run / resume`)."""
