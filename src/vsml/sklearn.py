"""A scikit-learn classifier over any learner of the library: a learned LA learning online.

    from vsml.sklearn import VSMLClassifier
    clf = VSMLClassifier()                      # the shipped `general` LA, inputs standardised online
    clf.fit(X_train, y_train).score(X_test, y_test)
    clf.partial_fit(X_more, y_more)             # keeps learning from where it is

``fit`` is one online pass (``epochs`` passes) over the rows in a shuffled order (``shuffle``);
``partial_fit`` learns the rows in the order given (the first call needs ``classes=``, as in
scikit-learn's other incremental estimators). Learning happens in the LA's forward dynamics — no
gradients are computed (Kirsch & Schmidhuber 2021, the paper this library implements). Labels may
be any values (``classes_`` holds them, sorted); rows per call any number (split into the
learner's ``batch_size``). With ``standardize=True`` (default) every feature is standardised with
its running mean and standard deviation over the rows learned so far (:mod:`vsml.online`).

``learner``: a shipped LA name (``vsml.pretrained.names()``), a saved learner (run folder or
``.npz``) or a registered learner name (``sgd``, ``adam``, ...; its options in ``learner_options``).
Everything is a :class:`vsml.OnlineModel` underneath (``model_``). Which of scikit-learn's
estimator checks apply, and why the others do not: tests/test_sklearn.py.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(estimator, X="no_validation", y="no_validation", **kwargs):
        return estimator._validate_data(X, y, **kwargs)


from vsml.online import OnlineModel, online

__all__ = ["VSMLClassifier"]


class VSMLClassifier(ClassifierMixin, BaseEstimator):
    """Online classification with a learned learning algorithm (module docstring).

    Parameters: ``learner`` (default ``"general"``), ``standardize`` (running per-feature
    standardisation, default True), ``batch_size`` (rows per learner step, default 1), ``epochs``
    (passes of ``fit``, default 1), ``shuffle`` (``fit`` visits rows in a random order, default
    True), ``seed`` (initial state and shuffling), ``learner_options`` (dict, for registered
    learners), ``ignore_contract`` (skip the LA's input-size check, :mod:`vsml.contract`).

    Attributes after fitting: ``classes_``, ``n_features_in_``, ``model_`` (the
    :class:`vsml.OnlineModel`)."""

    def __init__(
        self,
        learner: str = "general",
        *,
        standardize: bool = True,
        batch_size: int = 1,
        epochs: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        learner_options: dict | None = None,
        ignore_contract: bool = False,
    ):
        self.learner = learner
        self.standardize = standardize
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.seed = seed
        self.learner_options = learner_options
        self.ignore_contract = ignore_contract

    # ---- fitting

    def _new_model(self, classes: np.ndarray, n_features: int) -> OnlineModel:
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes to learn, got 1 class ({classes.tolist()})"
            )
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.classes_ = classes
        return online(
            str(self.learner),
            input_shape=(n_features,),
            classes=list(classes),
            batch_size=int(self.batch_size),
            seed=int(self.seed),
            standardize=bool(self.standardize),
            ignore_contract=bool(self.ignore_contract),
            **(self.learner_options or {}),
        )

    def fit(self, X, y):
        """Learn from scratch: ``epochs`` online passes over ``(X, y)``."""
        X, y = _validate_data(self, X, y, reset=True, dtype=np.float32)
        check_classification_targets(y)
        self.model_ = self._new_model(np.unique(y), X.shape[1])
        rng = np.random.default_rng(self.seed)
        for _ in range(int(self.epochs)):
            order = rng.permutation(len(X)) if self.shuffle else np.arange(len(X))
            self.model_.learn(X[order], y[order])
        return self

    def partial_fit(self, X, y, classes=None):
        """Keep learning online from ``(X, y)``, in the order given. The first call needs
        ``classes`` (every label the stream will hold)."""
        first = not hasattr(self, "model_")
        X, y = _validate_data(self, X, y, reset=first, dtype=np.float32)
        check_classification_targets(y)
        if first:
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit "
                    "(every label the stream will hold, e.g. classes=np.unique(y_all))"
                )
            self.model_ = self._new_model(np.unique(np.asarray(classes)), X.shape[1])
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(
                f"classes={np.unique(classes).tolist()} differs from the classes of the first call "
                f"to partial_fit, {self.classes_.tolist()}"
            )
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if len(unknown):
            raise ValueError(
                f"y holds labels {unknown.tolist()} that are not among the classes "
                f"{self.classes_.tolist()} (given at the first call to partial_fit)"
            )
        self.model_.learn(X, y)
        return self

    # ---- prediction (the learner's state is not changed)

    def _logits(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = _validate_data(self, X, reset=False, dtype=np.float32)
        return self.model_.predict(X)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``[n, len(classes_)]``, columns in the order of ``classes_``."""
        logits = self._logits(X).astype(np.float64)
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X) -> np.ndarray:
        return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row (values of ``classes_``)."""
        index = np.argmax(self._logits(X), axis=1)
        return self.classes_[index]
