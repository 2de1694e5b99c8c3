"""The sections of ``docs/benchmarks.md``, one module each, rendered from the JSON files of ``bench/``;
``bench/render.py`` puts them together into the page."""
