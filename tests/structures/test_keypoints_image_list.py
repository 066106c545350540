import torch
import torch.nn.functional as F

from detrun.structures import ImageList, Keypoints


def test_image_list_pads_and_remembers_sizes():
    g = torch.Generator().manual_seed(0)
    imgs = [torch.rand(3, 30, 45, generator=g), torch.rand(3, 50, 20, generator=g)]
    il = ImageList.from_tensors(imgs, size_divisibility=32, pad_value=-1.0)
    assert il.tensor.shape == (2, 3, 64, 64) and il.image_sizes == [(30, 45), (50, 20)]
    for i, img in enumerate(imgs):
        assert torch.equal(il[i], img)
        expected = F.pad(img, [0, 64 - img.shape[2], 0, 64 - img.shape[1]], value=-1.0)
        assert torch.equal(il.tensor[i], expected)
    single = ImageList.from_tensors(imgs[:1])
    assert single.tensor.shape == (1, 3, 30, 45) and len(single) == 1
    assert ImageList.from_tensors(imgs[:1], size_divisibility=16).tensor.shape == (1, 3, 32, 48)


def test_keypoints_indexing_and_heatmap():
    kp = Keypoints(torch.tensor([[[2.0, 3, 2], [9.99, 0, 1], [10, 10, 2], [5, 5, 0]], [[-1, 4, 2], [4, 4, 2], [0, 0, 2], [1, 1, 2]]]))
    assert len(kp) == 2 and len(kp[1]) == 1 and len(Keypoints.cat([kp, kp])) == 4
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 8, 8]])
    heat, valid = kp.to_heatmap(boxes, 5)
    # keypoint (2,3) -> cell x=1, y=1; (9.99, 0) -> x=4, y=0; (10,10) on the box edge -> last cell.
    assert heat[0, :3].tolist() == [1 * 5 + 1, 0 * 5 + 4, 24]
    assert valid.tolist() == [[True, True, True, False], [False, True, True, True]]
    assert heat[1, 1].item() == 2 * 5 + 2
