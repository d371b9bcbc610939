"""`grukit train` with task = "text" (grukit/app/text.py) and the pooling layers it uses."""

import csv

import numpy as np
import pytest
import torch

import grukit as gk
from grukit.app import text, train
from grukit.app.job import JobConfig, parse_config


def _texts(path, n=240, seed=0):
    """Short texts whose label is carried by one of a few sentiment words among filler."""
    rng = np.random.default_rng(seed)
    filler = "the a this that it was is product box tea coffee taste order bag".split()
    cues = {"good": ["great", "lovely", "excellent"], "bad": ["awful", "stale", "broken"]}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "review", "stars"])
        for i in range(n):
            label = "good" if i % 3 else "bad"  # 2:1, so the majority class is 0.67
            words = list(rng.choice(filler, size=rng.integers(4, 15)))
            words.insert(int(rng.integers(0, len(words))), str(rng.choice(cues[label])))
            w.writerow([f"r{i}", " ".join(words) + ", really.", label])


def test_text_job_learns_labels_reports_rivals_and_predicts(tmp_path):
    data = tmp_path / "reviews.csv"
    _texts(data)
    job = parse_config(f'[data]\ntask = "text"\npath = "{data}"\ntext_column = "review"\n'
                       'label_column = "stars"\nmax_tokens = 20\n[train]\nepochs = 20\npatience = 20\n'
                       'learning_rate = 0.01\n'
                       '[model]\nunits = 8\n')
    job.output.dir = str(tmp_path / "run")
    metrics = train.run(job, log=lambda *a: None)
    assert metrics["classes"] == ["bad", "good"] and metrics["texts"] == {"train": 168, "val": 24, "test": 48}
    assert metrics["majority_class"]["accuracy"] == pytest.approx(32 / 48)
    assert metrics["gru"]["accuracy"] >= 0.9 > metrics["majority_class"]["accuracy"]
    assert 0 <= metrics["tfidf_logistic_regression"]["accuracy"] <= 1
    assert np.sum(metrics["confusion"]) == 48 and metrics["verdict"]["line"].startswith("grukit's classifier")
    # grukit's classifier: the network's probabilities averaged with TF-IDF's, the share chosen on validation
    parts = metrics["parts"]
    w = metrics["network_share"]
    assert w in text.WEIGHTS and metrics["classifier"].startswith(f"{w:.2f} x the network + ")
    ours = w * parts["network"]["test"] + (1 - w) * parts["tfidf"]["test"]
    assert metrics["grukit"]["accuracy"] == pytest.approx(float((ours.argmax(1) == parts["y_test"]).mean()))
    losses = [text._log_loss(v * parts["network"]["val"] + (1 - v) * parts["tfidf"]["val"], parts["y_val"])
              for v in text.WEIGHTS]
    assert text._log_loss(w * parts["network"]["val"] + (1 - w) * parts["tfidf"]["val"],
                          parts["y_val"]) == pytest.approx(min(losses))
    assert (tmp_path / "run" / "confusion.png").read_bytes()[:4] == b"\x89PNG"

    new = tmp_path / "new.csv"
    new.write_text('review,note\n"what a great, lovely tea",x\n"stale and broken box",y\n"ok",z\n')
    out = train.predict(str(tmp_path / "run" / "model.grukit"), str(new), log=lambda *a: None)
    rows = list(csv.DictReader(open(out)))
    assert [r["note"] for r in rows] == ["x", "y", "z"]  # the other columns are kept
    assert [r["predicted_label"] for r in rows[:2]] == ["good", "bad"]
    assert all(0.5 <= float(r["probability"]) <= 1 for r in rows)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_saved_tfidf_part_gives_scikit_learns_probabilities(n_classes):
    """_tfidf keeps the fitted TF-IDF + logistic regression as numbers (the model file holds
    them); _tfidf_proba rebuilt from them equals scikit-learn's predict_proba."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    words = "good bad fine tea box awful great stale the a it".split()
    texts = [" ".join(rng.choice(words, size=int(rng.integers(2, 9)))) for _ in range(120)]
    y = np.array([i % n_classes for i in range(120)])
    fitted = text._tfidf(texts[:90], y[:90])
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    clf = LogisticRegression(max_iter=2000, C=4.0).fit(vec.fit_transform(texts[:90]), y[:90])
    expected = clf.predict_proba(vec.transform(texts[90:] + ["unseen words only"]))
    got = text._tfidf_proba(fitted, texts[90:] + ["unseen words only"], n_classes)
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert text._log_loss(np.array([[0.25, 0.75], [1.0, 0.0]]), np.array([1, 1])) == pytest.approx(
        -(np.log(0.75) + np.log(1e-12)) / 2)


def test_text_encoding_and_bad_inputs(tmp_path):
    assert text.tokenize("It's GREAT, 10/10!") == ["it's", "great", ",", "10", "/", "10", "!"]
    # words in any script, each other visible character on its own (models saved before: ASCII words)
    assert text.tokenize("Très BIEN l'été — Отлично 非常好 😀😀 don't") == [
        "très", "bien", "l'été", "—", "отлично", "非常好", "😀", "😀", "don't"]
    assert text.tokenize("It's GREAT, 10/10! Très", "ascii-words") == ["it's", "great", "10", "10", "tr", "s"]
    ids = text.encode(["a b c d", "zzz", ""], {"a": 2, "b": 3, "d": 4}, 3)
    np.testing.assert_array_equal(ids, [[3, 1, 4], [0, 0, 1], [0, 0, 0]])  # last tokens, padded in front
    data = tmp_path / "t.csv"
    data.write_text("text,label\nfine,a\nbad,\n")
    with pytest.raises(ValueError, match="line 3: column 'label' is empty"):
        text.read_texts(str(data), "text", "label")
    with pytest.raises(ValueError, match="column 'body' is not in"):
        text.read_texts(str(data), "body", "label")
    multi = tmp_path / "m.csv"  # a quoted text over two lines: errors name the line a row starts on
    multi.write_text('text,label\n"two\nlines",a\nbad,\n')
    with pytest.raises(ValueError, match="line 4: column 'label' is empty"):
        text.read_texts(str(multi), "text", "label")
    multi.write_text('text,label\n"two\nlines",a\nfine, a,b\n')
    with pytest.raises(ValueError, match="line 4: 3 cells where the header has 2"):
        text.read_texts(str(multi), "text", "label")
    empty = tmp_path / "e.csv"
    empty.write_text('text,label\nfine,a\n"  ",b\n')
    with pytest.raises(ValueError, match="line 3: column 'text' is empty"):
        text.read_texts(str(empty), "text", "label")
    latin = tmp_path / "l.csv"
    latin.write_bytes("text,label\ncaf\u00e9,a\n".encode("latin-1"))
    with pytest.raises(ValueError, match="is not UTF-8 text \\(byte b'\\\\xe9'"):
        text.read_texts(str(latin), "text", "label")
    one = tmp_path / "one.csv"
    one.write_text("text,label\n" + "".join(f"t{i},same\n" for i in range(20)))
    job = JobConfig()
    job.data.task, job.data.path, job.output.dir = "text", str(one), str(tmp_path / "o")
    with pytest.raises(ValueError, match="1 class"):
        train.run(job, log=lambda *a: None)
    with pytest.raises(ValueError, match="data.vocabulary .* at least 3"):
        parse_config('[data]\ntask = "text"\nvocabulary = 2')


def test_global_pooling_layers_follow_keras(tmp_path):
    """GlobalAveragePooling1D averages each sample's real steps (Keras 3 with a mask);
    GlobalMaxPooling1D takes every step, as Keras 3's does."""
    torch.manual_seed(0)
    x = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]], dtype=torch.bool)
    avg, m = gk.layers.GlobalAveragePooling1D()(x, mask)
    assert m is None
    torch.testing.assert_close(avg, torch.stack([x[0].mean(0), x[1, 2:].mean(0), x[2, 4]]))
    torch.testing.assert_close(gk.layers.GlobalMaxPooling1D()(x, mask)[0], x.amax(1))
    with pytest.raises(ValueError, match="must be 3-D"):
        gk.layers.GlobalAveragePooling1D()(torch.zeros(2, 3), None)
    keras = pytest.importorskip("keras")
    want = keras.layers.GlobalAveragePooling1D()(x.numpy(), mask=mask.numpy())
    np.testing.assert_allclose(np.asarray(want), avg.numpy(), rtol=1e-6, atol=1e-6)
    model = gk.Sequential([gk.layers.Embedding(10, 4, mask_zero=True),
                           gk.layers.GRU(3, return_sequences=True), gk.layers.GlobalAveragePooling1D(),
                           gk.layers.Dense(2)])
    ids = np.array([[0, 0, 3, 4], [1, 2, 3, 4]])
    before = model.predict(ids)
    model.save(str(tmp_path / "pooled.grukit"))  # the layer round-trips through a model file
    np.testing.assert_allclose(gk.load(str(tmp_path / "pooled.grukit")).predict(ids), before, rtol=0, atol=0)


def test_texts_outside_ascii_reach_the_network_and_old_models_keep_their_tokens(tmp_path, monkeypatch):
    """Labels carried only by Cyrillic words or emoji: the network alone learns them (with
    ASCII-only tokens it saw no cue at all). A model file without the tokens' rule (saved
    before it was named) predicts with the ASCII rule it was trained with."""
    rng = np.random.default_rng(1)
    cues = {"pos": ["отлично", "😀", "très bien"], "neg": ["ужасно", "😡", "très mal"]}
    data = tmp_path / "intl.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(240):
            label = "pos" if i % 2 else "neg"
            w.writerow([f"{rng.choice(['ok', 'so', 'well'])} {rng.choice(cues[label])} .", label])
    job = parse_config(f'[data]\ntask = "text"\npath = "{data}"\nmax_tokens = 8\n'
                       '[train]\nepochs = 15\npatience = 15\nlearning_rate = 0.02\n[model]\nunits = 8\n')
    job.output.dir = str(tmp_path / "run")
    metrics = train.run(job, log=lambda *a: None)
    assert metrics["gru"]["accuracy"] >= 0.9
    model_path = str(tmp_path / "run" / "model.grukit")
    new = tmp_path / "new.csv"
    new.write_text("text\nвсё отлично\nсовсем ужасно\n", encoding="utf-8")
    out = train.predict(model_path, str(new), log=lambda *a: None)
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert [r["predicted_label"] for r in rows] == ["pos", "neg"]

    model = gk.load(model_path)
    assert model.extra["tokens"] == text.TOKENS
    vocab = {w: i + 2 for i, w in enumerate(model.extra["words"])}
    old = dict(model.extra)
    del old["tokens"]
    seen = {}
    real_encode = text.encode

    def spy(texts, vocab_, max_tokens, tokens=text.TOKENS):
        seen["tokens"] = tokens
        return real_encode(texts, vocab_, max_tokens, tokens)

    monkeypatch.setattr(text, "encode", spy)
    text.predict(model, old, str(new), str(tmp_path / "old.csv"), log=lambda *a: None)
    assert seen["tokens"] == "ascii-words"
    assert real_encode(["всё отлично"], vocab, 3, "ascii-words").tolist() == [[0, 0, 0]]
    assert real_encode(["всё отлично"], vocab, 3)[0, -1] == vocab["отлично"]
