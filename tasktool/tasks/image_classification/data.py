"""Labelled image files for image-classification: class sub-folders, a metadata file, a manifest or a dataset."""

from tasktool.tasks.media_classes import MediaReader


class Reader(MediaReader):
    kind = "image"
