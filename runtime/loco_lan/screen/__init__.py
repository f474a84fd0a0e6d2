"""What a Windows 98 guest's screen shows, judged from the shell's structure."""

from loco_lan.screen.detector import STATES, Analysis, analyse, classify, load_image

__all__ = ["STATES", "Analysis", "analyse", "classify", "load_image"]
