"""Synthetic face masks: templates, colours, textures, the overlay and the batch runner.

Rendering (how a mask looks and fits): ``style`` (choose_style, parse_colour, parse_mix),
``overlay`` (apply_mask), ``templates`` and ``render_raster`` (canonical template maps),
``textures``, ``palette`` and ``preview`` (contact sheets). Nothing here imports keras, so batch
worker processes stay light.
"""
