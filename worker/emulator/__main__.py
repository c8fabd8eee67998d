"""`python -m worker.emulator`: the same command as `batchline emulator`."""

from .cli import emulator

emulator(prog_name="python -m worker.emulator")
