"""Explainable driving commentary (LINGO-1 style): a short clip in, what the car does and why out,
and answers to questions about the scene.

Registered through the ``vfm.plugins`` entry point exactly as an outside plugin is.
Importing this package reads nothing but the manifest, and imports no torch.
"""

from vfm.platform.plugin import Plugin

plugin = Plugin.from_package(__name__)
