"""Research and lent-device scripts: recipe sweeps, seed summaries, ensemble ceilings, GPU checks.

They may import product code; product code never imports them.
"""
