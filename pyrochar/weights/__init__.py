"""The weights shipped with the package, and the sha256 of each file.

``load_pretrained`` refuses a shipped file whose sha256 differs from its pin here
(a damaged installation). After retraining a shipped model, update its pin with
``sha256sum pyrochar/weights/NAME.pt``; tests/test_checkpoint.py checks that the
pins match the files.
"""

SHA256: dict[str, str] = {
    "baseline.pt": "1b148027ef61193403034bc73c1c12077e5bd4ce9b4326a0be342e772aa3f734",
    "bpl.pt": "bc522ed33f1c5d9e88bb3e1ff5dd4caa7e964b55d37e9008ae5fe6e7c93f552f",
    "full-ns.pt": "12a1f57e436e1fa487788d09e2d1e44f2ad43e317830c75540cd9a6af5a26177",
    "hlstm.pt": "ed3cf25283e064913dc639b9e046569375d4192d69c100cb8a9a34d335ca1390",
}

#: The alphabets every shipped model was trained on (``--split all`` of Omniglot's six
#: shared background alphabets, docs/training.md): one-shot runs built from them measure
#: nothing about new alphabets with these weights (``pyrochar classify`` warns).
TRAINED_ON_ALPHABETS = ("Balinese", "Greek", "Japanese_(katakana)", "Korean", "Latin", "Sanskrit")
