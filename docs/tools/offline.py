"""MkDocs hook: keep the rendered tutorials free of scripts from other hosts.

mkdocs-jupyter's page template carries nbconvert's MathJax and Mermaid loaders, which import their scripts
from a CDN when a page is viewed. The tutorials use neither (formulas are plain text, pictures are images), so
this hook cuts both loaders out of every page; ``tests/test_site.py`` checks that no page of the built site
refers to another host for a script, a stylesheet or a font.
"""

from __future__ import annotations

import re
from typing import Any

#: From nbconvert's "Load mathjax" comment to the end of its Mermaid block, as mkdocs-jupyter lays them out.
LOADERS = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mermaid configuration -->", re.S)


def strip_loaders(html: str) -> str:
    """The page without nbconvert's MathJax and Mermaid loaders."""
    return LOADERS.sub("", html)


def on_post_page(output: str, page: Any, config: Any) -> str:
    """Strip the loaders from each page as it is written."""
    return strip_loaders(output)
