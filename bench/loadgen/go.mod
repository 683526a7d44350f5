module kglab/bench/loadgen

go 1.21
