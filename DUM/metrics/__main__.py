"""``python -m DUM.metrics``: see DUM/metrics/command.py."""
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a path (python DUM/metrics): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from DUM.metrics.command import main  # noqa: E402

main()
