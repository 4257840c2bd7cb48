"""Migration pipelines built from the transforms, wired from a settings file."""
