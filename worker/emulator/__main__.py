"""`python -m batchline.emulator`: the same command as `batchline emulator`."""

from .cli import emulator

emulator(prog_name="python -m batchline.emulator")
