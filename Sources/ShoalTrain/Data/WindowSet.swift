import ShoalTensor

/// Windows of one split (train, validation or test), each `features × steps` (channels first,
/// as the hybrid model reads them) with its Sell/Hold/Buy label and forward return.
///
/// Windows overlap, so they are not stored one by one: every asset's normalised features are
/// kept once, feature-major (`features × bars`), and a window is its asset's columns from its
/// first bar on.
public struct WindowSet: Sendable, Equatable {
    /// Every asset's features side by side: asset after asset, each `features × bars` row-major.
    public var series: [Float]
    /// The bars of each asset in `series`.
    public var assetBars: [Int]
    /// Per window: its asset's index.
    public var assets: [Int32]
    /// Per window: the offset in `series` of its first feature at its first bar.
    public var origins: [Int]
    /// 0 Sell, 1 Hold, 2 Buy.
    public var labels: [Int32]
    /// The forward return, divided by the training split's standard deviation of returns.
    public var returns: [Float]
    public var features: Int
    public var steps: Int

    public init(
        series: [Float], assetBars: [Int], assets: [Int32], origins: [Int], labels: [Int32], returns: [Float], features: Int,
        steps: Int
    ) {
        self.series = series
        self.assetBars = assetBars
        self.assets = assets
        self.origins = origins
        self.labels = labels
        self.returns = returns
        self.features = features
        self.steps = steps
    }

    public var count: Int { labels.count }

    /// The samples at `indices` as the model's input `[n, features, steps]`, their labels and
    /// their returns `[n, 1]`.
    public func batch<Indices: Collection<Int>>(_ indices: Indices) -> (input: Tensor, labels: [Int], returns: Tensor) {
        let (features, steps) = (self.features, self.steps)
        let input = Tensor(shape: [indices.count, features, steps]) { out in
            series.withUnsafeBufferPointer { source in
                guard let source = source.baseAddress else { return }
                for (position, index) in indices.enumerated() {
                    let rowLength = assetBars[Int(assets[index])]
                    let origin = origins[index]
                    let sample = out + position * features * steps
                    for feature in 0..<features {
                        (sample + feature * steps).update(from: source + origin + feature * rowLength, count: steps)
                    }
                }
            }
        }
        return (
            input, indices.map { Int(labels[$0]) },
            Tensor(shape: [indices.count, 1], scalars: indices.map { returns[$0] })
        )
    }

    /// How many samples of each class (Sell, Hold, Buy).
    public var classCounts: [Int] {
        var counts = [0, 0, 0]
        for label in labels where (0..<3).contains(Int(label)) { counts[Int(label)] += 1 }
        return counts
    }
}
