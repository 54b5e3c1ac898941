"""Build, documentation and test tools: not part of the installed package.

``build_templates`` writes the mask template files in ``maskmtl_cli/assets/masks/``,
``render_frame`` holds the canonical face frame they are built on, ``render_gallery`` draws the
figures of docs/masks.md and ``render_synthetic`` draws synthetic faces for tests and
benchmarks. Run them from the repository root, e.g. ``python -m tools.build_templates``.
"""
