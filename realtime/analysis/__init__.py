"""Numbers derived from parsed frames: filters, joint angles, repetitions, person tracking."""
