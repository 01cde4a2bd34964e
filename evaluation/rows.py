"""What scoring says about one input: a ScoreRow per video or image, a FaceScore per face in it.

One row per input, failed or not: scores.csv, results.jsonl and index.html are written from these,
and results/<clip>.json keeps each for reuse. A video's score is its highest face score (the forged
face decides); `decided_by` names that face (0: the main, largest face).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class FaceScore:
    face: int  # 0: the main face
    fake_score: float
    verdict: str  # fake | real, at the row's threshold
    s1: float | None
    s2: float | None
    dadf: float | None
    face_frames: int  # sampled frames where this face was found
    box: list[float]  # the mean crop square, source pixels
    per_frame: list[dict]  # frame_index, face_found, detect_pass, s1, s2, dadf, fused
    overlay: str  # report-relative paths of the media ("" when there is no mask)
    plot: str
    masks: str
    face_px: float = 0.0  # median face size (landmark box's larger side), source pixels

    def caution(self, min_face_px: int) -> str:
        """One line when this face is too small for the model's score to mean much, else ''."""
        if not min_face_px or not 0 < self.face_px < min_face_px:
            return ""
        return (f"face ~{self.face_px:.0f} px, smaller than this model's min_face_px "
                f"({min_face_px}): its score is unproven, see the model card")


@dataclass
class ScoreRow:
    video: str
    clip: str
    status: str = "ok"  # ok | error
    error: str = ""  # one line, for failed inputs
    fake_score: float | None = None
    verdict: str = ""
    s1: float | None = None  # s1 / s2 / dadf / face_frames: of the face that decided
    s2: float | None = None
    dadf: float | None = None
    frames: int = 0
    face_frames: int = 0
    faces: int = 0
    decided_by: int | None = None
    threshold: float | None = None
    aggregator: str = ""
    model_run_id: str = ""
    input: str = ""  # video | image
    sampling: str = ""  # exact | keyframe | image
    preprocessing: dict = field(default_factory=dict)
    per_frame: list[dict] = field(default_factory=list)  # of the face that decided
    overlay: str = ""
    plot: str = ""
    masks: str = ""
    caution: str = ""  # of the face that decided, e.g. a face too small for the model
    face_scores: list[FaceScore] = field(default_factory=list)

    @classmethod
    def scored(cls, video: str, clip: str, faces: list[FaceScore], frames: int,
               min_face_px: int = 0, **about) -> "ScoreRow":
        """The row of an input whose faces were scored: the highest face score decides."""
        top = max(faces, key=lambda f: f.fake_score)
        row = cls(video, clip, fake_score=top.fake_score, verdict=top.verdict, s1=top.s1,
                  s2=top.s2, dadf=top.dadf, frames=frames, face_frames=top.face_frames,
                  faces=len(faces), decided_by=top.face, per_frame=top.per_frame,
                  overlay=top.overlay, plot=top.plot, masks=top.masks, face_scores=faces,
                  **about)
        row.set_caution(min_face_px)
        return row

    def set_caution(self, min_face_px: int) -> None:
        """The caution of the face that decided, under the model's min_face_px (a saved row is
        reused under the current one)."""
        decided = [f for f in self.face_scores if f.face == self.decided_by]
        self.caution = decided[0].caution(min_face_px) if decided else ""

    @classmethod
    def failed(cls, video: str, clip: str, reason: str, model_run_id: str) -> "ScoreRow":
        return cls(video, clip, status="error", error=" ".join(reason.split()),
                   model_run_id=model_run_id)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ScoreRow":
        """A row saved by to_dict (keys this version does not know are dropped)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["face_scores"] = [FaceScore(**f) for f in values.get("face_scores", [])]
        return cls(**values)
