"""The kubelet device plugin: advertises GPU memory units and answers Allocate from operator annotations."""
