package dev.qnat.safetensors;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** Tensors in their order, with lookup by name: what a file and a checkpoint both hold. */
record TensorList(List<SafetensorsTensor> list, Map<String, SafetensorsTensor> byName) {
    static TensorList of(List<SafetensorsTensor> tensors) {
        Map<String, SafetensorsTensor> byName = new LinkedHashMap<>();
        tensors.forEach(t -> byName.put(t.name(), t));
        return new TensorList(List.copyOf(tensors), Map.copyOf(byName));
    }

    Optional<SafetensorsTensor> find(String name) {
        return Optional.ofNullable(byName.get(name));
    }
}
