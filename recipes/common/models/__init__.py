"""Model nodes: Mask/Faster R-CNN with FPN in Detectron2's and torchvision's conventions, and backbone short names."""
