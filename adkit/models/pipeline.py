"""``Pipeline``: normalization steps in front of a detector, itself a detector."""
from __future__ import annotations

import numpy as np

from ..normalize.base import Transform
from ..params import Instance, Tuple
from .base import AnomalyResult, Detector

__all__ = ["Pipeline"]


class Pipeline(Detector):
    """Normalization steps fitted on the training images, then a detector.

    ``fit`` fits each step on the (already normalized) training images and applies
    it, then fits the detector on the result. ``predict`` applies the steps to the
    test images, runs the detector, and brings the maps (and log NFA) back to the
    frame of the input images (e.g. undoing an alignment), so they compare with the
    ground-truth masks.

    Parameters
    ----------
    steps : list of Transform
        e.g. ``[Midway(), Align()]``; an empty list gives the bare detector.
    detector : Detector
    """

    name = "pipeline"

    _parameter_constraints = {
        "steps": Tuple(Instance(Transform, "one of adkit.normalize's transforms such as "
                                           "Midway()"), min_length=0, container=list),
        "detector": Instance(Detector, "an adkit detector such as KNN()"),
    }

    def __init__(self, steps=(), detector=None):
        self._set_params(locals())

    @property
    def _min_train(self):
        return max([self.detector._min_train] + [s._min_train for s in self.steps])

    @property
    def _min_train_why(self):
        parts = [self.detector] + list(self.steps)
        worst = max(parts, key=lambda e: e._min_train)
        return f"{type(worst).__name__} needs them"

    def _fit(self, images):
        x = images
        for s in self.steps:
            x = s.fit(x).transform(x)
        self.detector.fit(x)

    def _predict(self, images):
        x = images
        inverses = []
        for s in self.steps:
            x, inv = s.transform_with_inverse(x)
            inverses.append(inv)
        res = self.detector.predict(x)
        maps, log_nfa = res.maps, res.log_nfa
        for inv in reversed(inverses):
            maps = inv(maps)
            if log_nfa is not None:
                # outside the warped field of view nothing is detected (log NFA = 0)
                log_nfa = -inv(-log_nfa)
        extras = dict(res.extras, normalized_images=x)
        return AnomalyResult(maps, res.scores, log_nfa, res.threshold, extras)

    def _get_state(self):
        return {"steps": {str(i): s._export_state() for i, s in enumerate(self.steps)},
                "detector": self.detector._export_state()}

    def _set_state(self, state):
        from ..estimator import ModelFileError, state_dict
        steps = state_dict(state, "steps", [str(i) for i in range(len(self.steps))])
        for i, s in enumerate(self.steps):
            s._import_state(steps[str(i)])
        self.detector._import_state(state_dict(state, "detector"))
        if self.detector.image_size_ != self.image_size_:  # the steps keep the size
            raise ModelFileError(f"its detector was fitted on {self.detector.image_size_} "
                                 f"images, the pipeline on {self.image_size_}")

    def __repr__(self):
        return f"Pipeline(steps={self.steps!r}, detector={self.detector!r})"
