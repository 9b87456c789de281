import pytest
import torch
import torch.nn.functional as F

from cat_seg.models.segmentor.patch_inference import patch_inference, window_offsets


def official_style_reference(image, logits_fn, crop, stride, out_res):
    """The official sliding scheme written with unfold/fold (independent of the implementation)."""
    resized = F.interpolate(image, size=out_res, mode='bilinear', align_corners=False)
    patches = F.unfold(resized, kernel_size=crop, stride=stride)            # (1, 3*c*c, N)
    views = patches.transpose(1, 2).reshape(-1, 3, crop, crop)
    global_view = F.interpolate(image, size=(crop, crop), mode='bilinear', align_corners=False)
    logits = logits_fn(torch.cat([views, global_view]))
    probs = F.interpolate(logits, size=(crop, crop), mode='bilinear', align_corners=False).sigmoid()
    local, glob = probs[:-1], probs[-1:]
    num_classes = probs.shape[1]
    folded = F.fold(local.flatten(1).T[None], out_res, kernel_size=crop, stride=stride)
    count = F.fold(torch.ones_like(local[:, :1]).flatten(1).T[None], out_res, crop, stride=stride)
    local = (folded / count).view(1, num_classes, *out_res)
    glob = F.interpolate(glob, size=out_res, mode='bilinear', align_corners=False)
    return (local + glob) / 2


def toy_logits(views):
    """A position-dependent stand-in for the model: 2 'classes' at 1/4 resolution."""
    return torch.cat([F.avg_pool2d(views[:, :1], 4), -F.avg_pool2d(views[:, 1:2] * 2, 4)], dim=1)


def test_official_grid_offsets():
    assert window_offsets((640, 640), (384, 384), (256, 256)) == [
        (0, 0), (0, 256), (256, 0), (256, 256)]
    # Non-square: the last window is aligned to the border and every pixel is covered.
    assert window_offsets((64, 100), (32, 32), (24, 24)) == [
        (y, x) for y in (0, 24, 32) for x in (0, 24, 48, 68)]


def test_matches_unfold_fold_reference():
    torch.manual_seed(0)
    image = torch.randn(1, 3, 30, 40)
    ours = patch_inference(image, toy_logits, crop_size=(24, 24), stride=(16, 16),
                           resize_to=(40, 40))
    reference = official_style_reference(image, toy_logits, 24, 16, (40, 40))
    assert ours.shape == (1, 2, 40, 40)
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=0)


def test_batch_equals_single_images():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 30, 40)
    kwargs = dict(crop_size=(24, 24), stride=(16, 16), resize_to=(40, 48))
    batched = patch_inference(images, toy_logits, **kwargs)
    single = torch.cat([patch_inference(images[i:i + 1], toy_logits, **kwargs) for i in range(2)])
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=0)


def test_without_global_view_is_the_window_average():
    image = torch.full((1, 3, 16, 16), 0.5)
    probs = patch_inference(image, toy_logits, crop_size=(8, 8), stride=(4, 4), resize_to=(16, 16),
                            with_global_view=False)
    torch.testing.assert_close(probs[0, 0], torch.full((16, 16), torch.sigmoid(torch.tensor(0.5))))


def test_crop_larger_than_resized_image_is_rejected():
    with pytest.raises(ValueError, match='crop_size 48 is larger than the resized image side 40'):
        patch_inference(torch.zeros(1, 3, 8, 8), toy_logits, crop_size=(48, 48), stride=(8, 8),
                        resize_to=(40, 40))


def test_class_chunks_give_the_same_probabilities():
    torch.manual_seed(0)
    image = torch.randn(2, 3, 30, 40)
    kwargs = dict(crop_size=(24, 24), stride=(16, 16), resize_to=(40, 40))
    torch.testing.assert_close(patch_inference(image, toy_logits, class_chunk_size=1, **kwargs),
                               patch_inference(image, toy_logits, **kwargs))
