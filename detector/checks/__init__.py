"""Temporal-consistency checks, listed in one explicit registry."""
from detector.checks.appearance import AppearanceJumpCheck, HardPoseCheck
from detector.checks.base import CheckContext, CheckFactory, CheckSignal, FaceObservation, TrackCheck
from detector.checks.geometry import ExpressionDynamicsCheck, LandmarkJitterCheck, PoseConsistencyCheck
from detector.checks.texture import BoundaryCheck, SharpnessMismatchCheck, TemporalTextureCheck

#: name -> check class. Order is the order of report rows.
CHECKS: dict[str, type[TrackCheck]] = {
    SharpnessMismatchCheck.name: SharpnessMismatchCheck,
    BoundaryCheck.name: BoundaryCheck,
    TemporalTextureCheck.name: TemporalTextureCheck,
    LandmarkJitterCheck.name: LandmarkJitterCheck,
    PoseConsistencyCheck.name: PoseConsistencyCheck,
    ExpressionDynamicsCheck.name: ExpressionDynamicsCheck,
    AppearanceJumpCheck.name: AppearanceJumpCheck,
    HardPoseCheck.name: HardPoseCheck,
}

__all__ = ["CHECKS", "CheckContext", "CheckFactory", "CheckSignal", "FaceObservation", "TrackCheck"]
