"""Files that ship with maskmtl: mask templates, sample photos, the pretrained model."""
