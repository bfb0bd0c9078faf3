// An empty program: what the bare Node executable costs to start and exit (figure 2).
