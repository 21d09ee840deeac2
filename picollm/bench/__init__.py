"""Speed against the machine's own peak: plan (what is timed), machine, jobs, run (the stage), report."""
