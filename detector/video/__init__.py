"""Video input: the abstract :class:`VideoSource` and its PyAV backend."""
from detector.video.pyav_source import PyAVSource, open_video, probe
from detector.video.source import Frame, RateSampler, VideoInfo, VideoSource

__all__ = ["Frame", "PyAVSource", "RateSampler", "VideoInfo", "VideoSource", "open_video", "probe"]
