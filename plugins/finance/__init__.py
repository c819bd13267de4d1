"""Financial question answering: numerical reasoning over report excerpts, with the program
that proves each answer.

Registered through the ``vfm.plugins`` entry point exactly as an outside plugin is.
Importing this package reads nothing but the manifest, and imports no torch.
"""

from vfm.platform.plugin import Plugin

plugin = Plugin.from_package(__name__)
