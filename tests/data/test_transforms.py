import numpy as np

from pixelwise.data.transforms import AugmentConfig, train_transform


def test_mask_moves_with_image_and_padding_is_ignored():
    """Colour encodes the class; after scale/crop/flip every labelled pixel keeps its colour."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 5, (15, 20)).repeat(8, 0).repeat(8, 1).astype(np.uint8)  # 120x160, 8px blocks
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)
    image = palette[label]
    tf = train_transform(AugmentConfig(scale_range=(0.5, 1.0), crop=(128, 192), photometric=0), ignore_index=99)
    saw_padding = False
    for seed in range(10):
        tf.set_random_seed(seed)
        out = tf(image=image, mask=label)
        img, lab = out["image"], out["mask"]
        assert img.shape[:2] == lab.shape == (128, 192)
        valid = lab != 99
        saw_padding |= bool((~valid).any())
        # interior pixels (away from block edges, where bilinear blends) must match exactly
        match = (np.abs(img.astype(int) - palette[np.where(valid, lab, 0)].astype(int)).sum(-1) < 30)
        interior = valid.copy()
        interior[1:-1, 1:-1] &= ((lab[1:-1, 1:-1] == lab[:-2, 1:-1]) & (lab[1:-1, 1:-1] == lab[2:, 1:-1])
                                 & (lab[1:-1, 1:-1] == lab[1:-1, :-2]) & (lab[1:-1, 1:-1] == lab[1:-1, 2:]))
        interior[[0, -1], :] = False
        interior[:, [0, -1]] = False
        assert match[interior].mean() > 0.99
        # and a mask that did not move with its image would fail: flip the mask alone
        flipped = lab[:, ::-1]
        wrong = np.abs(img.astype(int) - palette[np.where(flipped != 99, flipped, 0)].astype(int)).sum(-1) < 30
        assert wrong[interior & (flipped != 99)].mean() < 0.6
        assert (img[~valid] == 0).all()  # image padded with 0 where the mask is ignore
    assert saw_padding


def test_same_seed_same_augmentation():
    image = np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    label = np.random.default_rng(2).integers(0, 3, (60, 80), dtype=np.uint8)
    tf = train_transform(AugmentConfig(crop=(32, 48)), ignore_index=255)
    outs = []
    for _ in range(2):
        tf.set_random_seed(7)
        outs.append(tf(image=image, mask=label))
    assert np.array_equal(outs[0]["image"], outs[1]["image"])
    assert np.array_equal(outs[0]["mask"], outs[1]["mask"])
