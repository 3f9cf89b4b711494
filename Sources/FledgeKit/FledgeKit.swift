// FledgeKit: the umbrella module; `import FledgeKit` brings every library module of Fledge.
@_exported import FledgeData
@_exported import FledgeDistributed
@_exported import FledgeFiles
@_exported import FledgeGeneration
@_exported import FledgeInterop
@_exported import FledgeModel
@_exported import FledgeTensor
@_exported import FledgeTokenizer
@_exported import FledgeTraining
