import textkit


def test_version_is_semantic():
    assert textkit.__version__.count(".") == 2
