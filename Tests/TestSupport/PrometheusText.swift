/// The values of the series of family `name` in a Prometheus text exposition whose labels
/// include `labels` (every series of the family when empty).
public func prometheusValues(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> [Double] {
    text.split(separator: "\n").compactMap { line -> Double? in
        guard line.hasPrefix(name + "{") || line.hasPrefix(name + " ") else { return nil }
        let series = line.split(separator: " ").first.map(String.init) ?? ""
        guard labels.allSatisfy({ series.contains("\($0.key)=\"\($0.value)\"") }) else { return nil }
        return line.split(separator: " ").last.flatMap { Double($0) }
    }
}
