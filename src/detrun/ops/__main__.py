"""`python -m detrun.ops`: print the ops doctor report."""
from .doctor import report

print(report())
