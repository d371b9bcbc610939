import os
import sys

# Keras 3 must run on the torch backend; the choice is read once, at import.
os.environ["KERAS_BACKEND"] = "torch"
sys.path.insert(0, os.path.dirname(__file__))


def pytest_terminal_summary(terminalreporter):
    """How many fuzz examples ran (tests/test_fuzz.py), good and bad inputs together."""
    fuzz = sys.modules.get("test_fuzz")
    ran = getattr(fuzz, "RAN", None)
    if ran:
        terminalreporter.write_line(f"fuzz: {sum(ran.values())} examples over {len(ran)} properties "
                                    f"({', '.join(f'{k} {v}' for k, v in ran.items())})")
