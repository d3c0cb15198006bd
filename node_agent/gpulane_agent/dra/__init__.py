"""gpulane as a DRA driver, node side: the kubelet plugin (v1/v1beta1), its registration, CDI specs, ResourceSlices."""
