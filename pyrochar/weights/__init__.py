"""The weights shipped with the package, and the sha256 of each file.

``load_pretrained`` refuses a shipped file whose sha256 differs from its pin here
(a damaged installation). After retraining a shipped model, update its pin with
``sha256sum pyrochar/weights/NAME.pt``; tests/test_checkpoint.py checks that the
pins match the files.
"""

SHA256: dict[str, str] = {
    "baseline.pt": "a44ffa893a6c63d91e62ec8fab55202c23b22d14f9a9e1c417b866e04aab4570",
    "bpl.pt": "30bec99beeb209f1746c3c7c15fddb093dd539b59901743f9310ef00550c784b",
    "full-ns.pt": "a4349114c3898035ff894015f307e95152b0ac6640cb998206b12289c09a0ccd",
    "hlstm.pt": "74e5c083615d22a865fd682d837a5cb18633a598c7ce8744ad3d8da4ea63e965",
}
