/*
  Cryptocurrency miners and their configuration files.
*/

rule miner_stratum_pool
{
    meta:
        description = "stratum mining pool address"
        severity = "high"
    strings:
        $a = /stratum\+(tcp|ssl|tls):\/\/[a-zA-Z0-9.\-]{3,255}:[0-9]{2,5}/ ascii wide
    condition:
        any of them
}

rule miner_xmrig
{
    meta:
        description = "XMRig miner binary or configuration"
        severity = "high"
    strings:
        $a = "xmrig" ascii nocase
        $b = "donate-level" ascii
        $c = "randomx" ascii nocase
        $d = "cryptonight" ascii nocase
        $e = "\"coin\":" ascii
        $f = "nicehash" ascii nocase
    condition:
        ($a and ($b or $c or $d)) or ($b and ($c or $d or $e)) or (3 of them)
}
