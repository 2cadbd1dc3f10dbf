"""Face detection, landmarks, tracking and aligned crops."""
from detector.faces.landmarks import (LANDMARK_BACKENDS, FaceLandmarks, LandmarkDetector, LandmarkOptions,
                                      MediaPipeFaceMesh, create_landmark_detector)
from detector.faces.regions import align_face
from detector.faces.tracking import FaceTracker, TrackerOptions

__all__ = ["LANDMARK_BACKENDS", "FaceLandmarks", "FaceTracker", "LandmarkDetector", "LandmarkOptions",
           "MediaPipeFaceMesh", "TrackerOptions", "align_face", "create_landmark_detector"]
