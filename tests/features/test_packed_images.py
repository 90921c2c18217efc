"""PackedImages: a loader batch of images of several sizes as one tensor, unpacked to the same images."""
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from hydra_vision.features import FeatureExtractor
from hydra_vision.features.loading import PackedImages, collate_images

from .conftest import make_model


def _image(index: int) -> torch.Tensor:
    """uint8 (3, 5 + index % 3, 7 + index % 2), distinct values per image."""
    h, w = 5 + index % 3, 7 + index % 2
    return (torch.arange(3 * h * w) + 31 * index).remainder(256).to(torch.uint8).view(3, h, w)


class _Ragged(Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int):
        return (index, None, "OSError: broken") if index == 4 else (index, _image(index), None)


def test_pack_then_unpack_gives_the_images_back():
    images = [_image(i) for i in range(5)]
    packed = PackedImages.pack(images)
    assert packed.data.shape == (sum(x.numel() for x in images),) and packed.shapes.tolist()[1] == [3, 6, 8]
    for got, expected in zip(packed.unpack(), images, strict=True):
        assert torch.equal(got, expected)


def test_collate_packs_only_ragged_batches():
    ragged = collate_images([(i, _image(i), None) for i in range(3)])
    uniform = collate_images([(i, _image(0), None) for i in range(3)])
    assert isinstance(ragged.images, PackedImages)
    assert isinstance(uniform.images, torch.Tensor) and uniform.images.shape == (3, 3, 5, 7)


def test_worker_batches_arrive_packed_with_failures_set_aside():
    loader = DataLoader(_Ragged(), batch_size=5, num_workers=2, collate_fn=collate_images)
    batches = list(loader)
    assert [b.failures for b in batches] == [[(4, "OSError: broken")], []]
    for batch in batches:
        assert isinstance(batch.images, PackedImages)
        for index, image in zip(batch.indices.tolist(), batch.images.unpack(), strict=True):
            assert torch.equal(image, _image(index))


def test_packed_images_need_resizing_on_the_device():
    extractor = FeatureExtractor(make_model())
    with pytest.raises(ValueError, match="several sizes"):
        extractor(PackedImages.pack([_image(0), _image(1)]))
