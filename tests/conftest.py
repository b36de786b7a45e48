import sys
from pathlib import Path

# Test helpers (vectors.py, ...) are imported as plain modules.
sys.path.insert(0, str(Path(__file__).resolve().parent))
