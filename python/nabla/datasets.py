"""nabla.datasets: Fashion-MNIST from Debian's dataset-fashion-mnist (or root)."""
from . import _C
from .utils.data import TensorDataset


class FashionMNIST(TensorDataset):
    """Fashion-MNIST's training (60000) or test (10000) split: images [N, 1, 28, 28] float32
    normalized with the training set's mean 0.2860 and std 0.3530, labels int64. root None:
    $NABLA_FASHION_MNIST_DIR, else /usr/share/datasets/fashion-mnist."""

    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]

    def __init__(self, root=None, train=True, device=None):
        images, labels = _C.fashion_mnist(None if root is None else str(root), train)
        if device is not None:
            images, labels = images.to(device), labels.to(device)
        super().__init__(images, labels)
        self.data, self.targets = images, labels
