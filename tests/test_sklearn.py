"""vsml.sklearn.VSMLClassifier: scikit-learn's estimator checks, pipelines, grid search, labels, errors.

scikit-learn's checks (``parametrize_with_checks``) all run on the default estimator (the shipped
``general`` LA). Two are skipped by scikit-learn itself where their dependencies are absent:
``check_classifier_data_not_an_array`` without pandas, and ``check_array_api_input`` unless
``SCIPY_ARRAY_API=1`` (the estimator computes with numpy and JAX, not the array API). Checks that
apply only to other kinds of estimators (sample weights, class weights, multi-output,
``decision_function``, ``n_iter_``) are not generated for this one: it has none of these.
"""

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from vsml.sklearn import VSMLClassifier


@parametrize_with_checks([VSMLClassifier()])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _iris():
    X, y = load_iris(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(X))
    return X[order], y[order]


def test_learns_iris_online_with_string_labels_and_partial_fit_equals_fit():
    X, y = _iris()
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = VSMLClassifier(shuffle=False).fit(X[:100], names[:100])
    assert clf.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    assert clf.score(X[100:], names[100:]) > 0.7  # chance: 1/3 (one online pass over 100 rows)
    proba = clf.predict_proba(X[100:])
    assert proba.shape == (50, 3) and np.allclose(proba.sum(1), 1)
    assert clf.predict(X[100:]).tolist() == clf.classes_[proba.argmax(1)].tolist()
    # the same stream in uneven pieces through partial_fit: the same model
    inc = VSMLClassifier()
    for lo, hi in ((0, 7), (7, 8), (8, 61), (61, 100)):
        inc.partial_fit(X[lo:hi], names[lo:hi], classes=["virginica", "setosa", "versicolor"])
    np.testing.assert_allclose(inc.predict_proba(X[100:]), proba, rtol=1e-4, atol=1e-6)


def test_pipeline_and_grid_search():
    X, y = _iris()
    pipe = make_pipeline(StandardScaler(), VSMLClassifier(standardize=False))
    search = GridSearchCV(pipe, {"vsmlclassifier__epochs": [1, 2]}, cv=2).fit(X[:120], y[:120])
    assert search.best_params_["vsmlclassifier__epochs"] in (1, 2)
    assert search.score(X[120:], y[120:]) > 0.8


def test_clear_errors():
    X, y = _iris()
    clf = VSMLClassifier()
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X[:10], y[:10])
    clf.partial_fit(X[:10], y[:10], classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"labels \[7\] that are not among the classes"):
        clf.partial_fit(X[:2], [0, 7])
    with pytest.raises(ValueError, match="differs from the classes of the first call"):
        clf.partial_fit(X[:2], [0, 1], classes=[0, 1])
    with pytest.raises(ValueError, match="X has 3 features, but VSMLClassifier is expecting 4"):
        clf.predict(X[:2, :3])
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        VSMLClassifier(batch_size=0).fit(X, y)
    with pytest.raises(ValueError, match="expects 196 input values"):  # an LA's input contract
        VSMLClassifier("meta_mnist").fit(X, y)
