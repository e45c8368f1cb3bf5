"""UN/EDIFACT definitions: ORDERS, ORDRSP, DESADV, INVOIC (D96A, D01B), APERAK (D96A), CONTRL (syntax 3).

Structures are complete (every segment and group of the UN directory message, with its
repeat counts) so that order checks never trip on a legal segment. Element definitions
cover the segments trading partners actually send in these messages (list below); segments
without one (APR, RCS, STG, CCI, CAV, SEL, EQA, DLM, SGP, DGS, ...) are checked for position
and repeats only. D01B changes against D96A that matter here: BGM element 2 is the C106
composite, RFF/C506 gains 1060, FTX gains 4447, FTX/IMD texts widen to 512/256, MOA 5004
and QTY 6060 widen, TAX gains 1227. COM may repeat C076 three times: that arrived in a later
directory (D03B has it), and later directories are checked with the D01B definitions.
"""

from __future__ import annotations

from . import MessageDef, parse_elements, parse_structure

_FRAGMENTS = {
    "ALC": """
C1: QTY RNG:C1
C1: PCD RNG:C1
C2: MOA RNG:C1
C1: RTE RNG:C1
C5: TAX MOA:C1
""",
    "ALC01B": """
C1: QTY RNG:C1
C1: PCD RNG:C1
C2: MOA RNG:C1 CUX:C1 DTM:C1
C1: RTE RNG:C1
C5: TAX MOA:C1
""",
    "PARTY": """
C5: DOC DTM:C5
C5: CTA COM:C5
""",
}

_ORDERS_D96A = """
UNH BGM DTM:M35 PAI:C1 ALI:C5 IMD:C1 FTX:C99
C10: RFF DTM:C5
C99: NAD LOC:C25 FII:C5
  C10: RFF DTM:C5
  @PARTY
C5: TAX MOA:C1 LOC:C5
C5: CUX PCD:C5 DTM:C5
C10: PAT DTM:C5 PCD:C1 MOA:C1
C10: TDT
  C10: LOC DTM:C5
C5: TOD LOC:C2
C10: PAC MEA:C5
  C5: PCI RFF:C1 DTM:C5 GIN:C10
C10: EQD HAN:C5 MEA:C5 FTX:C5
C10: SCC FTX:C5 RFF:C5
  C10: QTY DTM:C5
C25: APR DTM:C5 RNG:C1
C15: ALC ALI:C5 DTM:C5
  @ALC
C100: RCS RFF:C5 DTM:C5 FTX:C5
C200000: LIN PIA:C25 IMD:C99 MEA:C5 QTY:C10 PCD:C5 ALI:C5 DTM:C35 MOA:C10 GIN:C1000 GIR:C1000 QVR:C1 DOC:C5 PAI:C1 FTX:C99
  C999: CCI CAV:C10 MEA:C10
  C10: PAT DTM:C5 PCD:C1 MOA:C1
  C25: PRI CUX:C1 APR:C1 RNG:C1 DTM:C5
  C10: RFF DTM:C5
  C10: PAC MEA:C5 QTY:C5 DTM:C5
    C1: RFF DTM:C5
    C5: PCI RFF:C1 DTM:C5 GIN:C10
  C9999: LOC QTY:C1 DTM:C5
  C10: TAX MOA:C1 LOC:C5
  C99: NAD LOC:C5
    C5: RFF DTM:C5
    @PARTY
  C99: ALC ALI:C5 DTM:C5
    @ALC
  C10: TDT
    C10: LOC DTM:C5
  C5: TOD LOC:C2
  C10: EQD HAN:C5 MEA:C5 FTX:C5
  C100: SCC FTX:C5 RFF:C5
    C10: QTY DTM:C5
  C100: RCS RFF:C5 DTM:C5 FTX:C5
  C10: STG
    C3: QTY MOA:C1
UNS MOA:C12 CNT:C10
C10: ALC ALI:C1 MOA:M2
UNT
"""

_ORDRSP_D96A = """
UNH BGM DTM:M35 PAI:C1 ALI:C5 IMD:C1 FTX:C99
C10: RFF DTM:C5
C1: AJT FTX:C5
C99: NAD LOC:C25 FII:C5
  C10: RFF DTM:C5
  @PARTY
C5: TAX MOA:C1 LOC:C5
C5: CUX PCD:C5 DTM:C5
C10: PAT DTM:C5 PCD:C1 MOA:C1
C10: TDT
  C10: LOC DTM:C5
C5: TOD LOC:C2
C10: PAC MEA:C5
  C5: PCI RFF:C1 DTM:C5 GIN:C99
C10: EQD HAN:C5 MEA:C5 FTX:C5
C10: SCC FTX:C5 RFF:C5
  C10: QTY DTM:C5
C25: APR DTM:C5 RNG:C1
C15: ALC ALI:C5 DTM:C5
  @ALC
C100: RCS RFF:C5 DTM:C5 FTX:C5
C200000: LIN PIA:C25 IMD:C99 MEA:C5 QTY:C10 PCD:C5 ALI:C5 DTM:C35 MOA:C10 GIN:C1000 GIR:C1000 QVR:C1 DOC:C5 PAI:C1 FTX:C99
  C999: CCI CAV:C10 MEA:C10
  C10: PAT DTM:C5 PCD:C1 MOA:C1
  C1: AJT FTX:C5
  C25: PRI CUX:C1 APR:C1 RNG:C1 DTM:C5
  C999: RFF DTM:C5
  C10: PAC MEA:C5 QTY:C5 DTM:C5
    C1: RFF DTM:C5
    C5: PCI RFF:C1 DTM:C5 GIN:C99
  C9999: LOC QTY:C1 DTM:C5
  C10: TAX MOA:C1 LOC:C5
  C99: NAD LOC:C5
    C5: RFF DTM:C5
    @PARTY
  C99: ALC ALI:C5 DTM:C5
    @ALC
  C10: TDT
    C10: LOC DTM:C5
  C5: TOD LOC:C2
  C10: EQD HAN:C5 MEA:C5 FTX:C5
  C100: SCC FTX:C5 RFF:C5
    C10: QTY DTM:C5
  C100: RCS RFF:C5 DTM:C5 FTX:C5
  C10: STG
    C3: QTY MOA:C1
UNS MOA:C12 CNT:C10
C10: ALC ALI:C1 MOA:M2
UNT
"""

_DESADV_D96A = """
UNH BGM DTM:C10 ALI:C5 MEA:C5 MOA:C5
C10: RFF DTM:C1
C10: NAD LOC:C10
  C10: RFF DTM:C1
  C10: CTA COM:C5
C10: TOD LOC:C5 FTX:C5
C10: TDT PCD:C6
  C10: LOC DTM:C10
C10: EQD MEA:C5 SEL:C25 EQA:C5
  C10: HAN FTX:C10
C9999: CPS FTX:C5
  C9999: PAC MEA:C10 QTY:C10
    C10: HAN FTX:C10
    C1000: PCI RFF:C1 DTM:C5 GIR:C99
      C99: GIN DLM:C10
  C9999: LIN PIA:C10 IMD:C25 MEA:C10 QTY:C10 ALI:C10 GIN:C100 GIR:C100 DLM:C100 DTM:C5 FTX:C5 MOA:C5
    C10: RFF DTM:C1
    C10: DGS QTY:C1 FTX:C5
    C100: LOC NAD:C1 DTM:C1 QTY:C10
    C1000: SGP QTY:C10
    C9999: PCI DTM:C5 MEA:C10 QTY:C1
      C10: GIN DLM:C100
      C10: HAN FTX:C5 GIN:C1000
    C10: QVR DTM:C5
CNT:C5 UNT
"""

_INVOIC_D96A = """
UNH BGM DTM:M35 PAI:C1 ALI:C5 IMD:C1 FTX:C10
C99: RFF DTM:C5
C99: NAD LOC:C25 FII:C5
  C9999: RFF DTM:C5
  @PARTY
C5: TAX MOA:C1 LOC:C5
C5: CUX DTM:C5
C10: PAT DTM:C5 PCD:C1 MOA:C1 PAI:C1 FII:C1
C10: TDT
  C10: LOC DTM:C5
  C9999: RFF DTM:C5
C5: TOD LOC:C2
C1000: PAC MEA:C5
  C5: PCI RFF:C1 DTM:C5 GIN:C5
C9999: ALC ALI:C5
  C5: RFF DTM:C5
  @ALC
C100: RCS RFF:C5 DTM:C5 FTX:C5
C1: AJT FTX:C5
C1: INP FTX:C5
C9999999: LIN PIA:C25 IMD:C10 MEA:C5 QTY:C5 PCD:C1 ALI:C5 DTM:C35 GIN:C1000 GIR:C1000 QVR:C1 EQD:C1 FTX:C5
  C5: MOA CUX:C1
  C10: PAT DTM:C5 PCD:C1 MOA:C1
  C25: PRI APR:C1 RNG:C1 DTM:C5
  C10: RFF DTM:C5
  C10: PAC MEA:C10
    C10: PCI RFF:C1 DTM:C5 GIN:C10
  C9999: LOC QTY:C100 DTM:C5
  C99: TAX MOA:C1 LOC:C5
  C20: NAD LOC:C5
    C5: RFF DTM:C5
    @PARTY
  C15: ALC ALI:C5 DTM:C5
    @ALC
  C10: TDT
    C10: LOC DTM:C5
  C5: TOD LOC:C2
  C100: RCS RFF:C5 DTM:C5 FTX:C5
UNS CNT:C10
M100: MOA
  C1: RFF DTM:C5
C10: TAX MOA:C2
C15: ALC ALI:C1 MOA:C2
UNT
"""

_APERAK_D96A = """
UNH BGM DTM:C9 FTX:C9 CNT:C9
C9: RFF DTM:C9
C9: NAD CTA:C9 COM:C9
C999: ERC FTX:C1
  C1: RFF FTX:C9
UNT
"""

# Syntax version 3 CONTRL (ISO 9735 service message); used for every CONTRL version.
_CONTRL = """
UNH UCI
C999999: UCM
  C999: UCS UCD:C99
C999999: UCF
  C999999: UCM
    C999: UCS UCD:C99
UNT
"""

_ORDERS_D01B = """
UNH BGM DTM:M35 PAI:C1 ALI:C5 IMD:C999 FTX:C99 GIR:C10
C9999: RFF DTM:C5
C99: NAD LOC:C99 FII:C5
  C99: RFF DTM:C5
  @PARTY
C5: TAX MOA:C1 LOC:C9
C5: CUX PCD:C5 DTM:C5
C10: PAT DTM:C5 PCD:C1
  C9999: MOA GIR:C9 RJL:C99
C10: TDT
  C10: LOC DTM:C5
C5: TOD LOC:C2
C99: PAC MEA:C5
  C5: PCI RFF:C1 DTM:C5 GIN:C10
C10: EQD HAN:C5 MEA:C5 FTX:C5
C10: SCC FTX:C5 RFF:C5
  C10: QTY DTM:C5
C25: APR DTM:C5 RNG:C1
C99: ALC ALI:C5 DTM:C5
  @ALC
C999: RCS RFF:C5 DTM:C5 FTX:C99999
C999: DGS FTX:C5
  C99: CTA COM:C5
C200000: LIN PIA:C25 IMD:C99 MEA:C99 QTY:C99 PCD:C5 ALI:C5 DTM:C35 MOA:C10 GIS:C99 GIN:C1000 GIR:C1000 QVR:C1 DOC:C99 PAI:C1 MTD:C99 FTX:C99
  C999: CCI CAV:C10 MEA:C10
  C10: PAT DTM:C5 PCD:C1
    C9999: MOA GIR:C9
  C25: PRI CUX:C1 APR:C99 RNG:C1 DTM:C5
  C9999: RFF DTM:C5 GIS:C99 MOA:C99
  C99: PAC MEA:C5 QTY:C5 DTM:C5
    C1: RFF DTM:C5
    C5: PCI RFF:C1 DTM:C5 GIN:C10
  C9999: LOC QTY:C1 PCD:C1 DTM:C5
  C10: TAX MOA:C1 LOC:C5
  C999: NAD LOC:C5 FII:C5
    C99: RFF DTM:C5
    @PARTY
  C99: ALC ALI:C5 DTM:C5
    @ALC
  C10: TDT
    C10: LOC DTM:C5
  C5: TOD LOC:C2
  C10: EQD HAN:C5 MEA:C5 FTX:C5
  C100: SCC FTX:C5 RFF:C5
    C10: QTY DTM:C5
  C999: RCS RFF:C5 DTM:C5 FTX:C99999
  C10: STG
    C3: QTY MOA:C1
  C999: DGS FTX:C5
    C99: CTA COM:C5
UNS MOA:C99 CNT:C10
C10: ALC ALI:C1 MOA:M2
UNT
"""

_ORDRSP_D01B = """
UNH BGM DTM:M35 PAI:C1 ALI:C5 IMD:C999 FTX:C99 GIR:C10
C9999: RFF DTM:C5
C1: AJT FTX:C5
C99: NAD LOC:C25 FII:C5
  C99: RFF DTM:C5
  @PARTY
C5: TAX MOA:C1 LOC:C5
C5: CUX PCD:C5 DTM:C5
C10: PAT DTM:C5 PCD:C1 MOA:C1
C10: TDT
  C10: LOC DTM:C5
C5: TOD LOC:C2
C99: PAC MEA:C5
  C99: PCI RFF:C1 DTM:C5 GIN:C99
C10: EQD HAN:C5 MEA:C5 FTX:C5
C10: SCC FTX:C5 RFF:C5
  C10: QTY DTM:C5
C25: APR DTM:C5 RNG:C1
C99: ALC ALI:C5 DTM:C5
  @ALC
C999: RCS RFF:C5 DTM:C5 FTX:C99999
C200000: LIN PIA:C25 IMD:C99 MEA:C99 QTY:C99 PCD:C5 ALI:C5 DTM:C35 MOA:C10 GIS:C99 GIN:C1000 GIR:C1000 QVR:C1 DOC:C99 PAI:C1 MTD:C99 FTX:C99
  C999: CCI CAV:C10 MEA:C10
  C10: PAT DTM:C5 PCD:C1 MOA:C1
  C1: AJT FTX:C5
  C25: PRI CUX:C1 APR:C1 RNG:C1 DTM:C5
  C9999: RFF DTM:C5
  C99: PAC MEA:C5 QTY:C5 DTM:C5
    C1: RFF DTM:C5
    C99: PCI RFF:C1 DTM:C5 GIN:C99
  C9999: LOC QTY:C1 PCD:C1 DTM:C5
  C10: TAX MOA:C1 LOC:C5
  C999: NAD LOC:C5 FII:C5
    C99: RFF DTM:C5
    @PARTY
  C99: ALC ALI:C5 DTM:C5
    @ALC
  C10: TDT
    C10: LOC DTM:C5
  C5: TOD LOC:C2
  C10: EQD HAN:C5 MEA:C5 FTX:C5
  C100: SCC FTX:C5 RFF:C5
    C10: QTY DTM:C5
  C999: RCS RFF:C5 DTM:C5 FTX:C99999
  C10: STG
    C3: QTY MOA:C1
UNS MOA:C12 CNT:C10
C10: ALC ALI:C1 MOA:M2
UNT
"""

_DESADV_D01B = """
UNH BGM DTM:C10 ALI:C5 MEA:C5 MOA:C5 CUX:C9
C10: RFF DTM:C1
C99: NAD LOC:C10
  C10: RFF DTM:C1
  C10: CTA COM:C5
C10: TOD LOC:C5 FTX:C5
C10: TDT PCD:C6 TMD:C1
  C10: LOC DTM:C10
C10: EQD MEA:C5 SEL:C25 EQA:C5
  C10: HAN FTX:C10
C9999: CPS FTX:C5 QVR:C9
  C9999: PAC MEA:C10 QTY:C10
    C10: HAN FTX:C10
    C1000: PCI RFF:C1 DTM:C5
      C99: GIR DTM:C5
      C99: GIN DLM:C10
      C99: COD MEA:C9 QTY:C9 PCD:C9
  C9999: LIN PIA:C10 IMD:C25 MEA:C10 QTY:C10 ALI:C10 GIN:C100 GIR:C100 DLM:C100 DTM:C5 NAD:C99 TDT:C1 TMD:C1 HAN:C20 FTX:C99 MOA:C5
    C99: RFF NAD:C1 CTA:C1 DTM:C1
    C9999: DGS QTY:C1 FTX:C5
    C100: LOC NAD:C1 DTM:C1 QTY:C10
    C1000: SGP QTY:C10
    C9999: PCI DTM:C5 MEA:C10 QTY:C1
      C10: GIN DLM:C100
      C10: HAN FTX:C5 GIN:C1000
    C10: QVR DTM:C5
CNT:C5 UNT
"""

_INVOIC_D01B = """
UNH BGM DTM:M35 PAI:C1 ALI:C5 IMD:C1 FTX:C99 LOC:C10 GIS:C10 DGS:C1 GIR:C10
C99999: RFF DTM:C5 GIR:C5 LOC:C2 MEA:C5 QTY:C2 FTX:C5 MOA:C2 RTE:C99
C99: NAD LOC:C25 FII:C5 MOA:C99
  C9999: RFF DTM:C5
  @PARTY
C5: TAX MOA:C1 LOC:C5
C99: CUX DTM:C5
C10: PAT DTM:C5 PCD:C1 MOA:C1 PAI:C1 FII:C1
C10: TDT TSR:C1
  C10: LOC DTM:C5
  C9999: RFF DTM:C5
C5: TOD LOC:C2
C99: EQD SEL:C9
C1000: PAC MEA:C5 EQD:C1
  C5: PCI RFF:C1 DTM:C5 GIN:C5
C9999: ALC ALI:C5 FTX:C1
  C5: RFF DTM:C5
  @ALC01B
C100: RCS RFF:C5 DTM:C5 FTX:C5
C1: AJT FTX:C5
C1: INP FTX:C5
C9999999: LIN PIA:C25 PGI:C99 IMD:C99 MEA:C5 QTY:C5 PCD:C1 ALI:C5 DTM:C35 GIN:C1000 GIR:C1000 QVR:C1 EQD:C1 FTX:C99 DGS:C1
  C99: MOA CUX:C1
  C10: PAT DTM:C5 PCD:C99 MOA:C1
  C25: PRI CUX:C1 APR:C1 RNG:C1 DTM:C5
  C10: RFF DTM:C5
  C10: PAC MEA:C10 EQD:C1
    C10: PCI RFF:C1 DTM:C5 GIN:C10
  C9999: LOC QTY:C100 DTM:C5
  C99: TAX MOA:C2 LOC:C5
  C99: NAD LOC:C5 FII:C5
    C5: RFF DTM:C5
    @PARTY
  C30: ALC ALI:C5 DTM:C5 FTX:C1
    C1: QTY RNG:C1
    C1: PCD RNG:C1
    C2: MOA RNG:C1 CUX:C1 DTM:C1
    C1: RTE RNG:C1
    C5: TAX MOA:C2
  C10: TDT
    C10: LOC DTM:C5
  C5: TOD LOC:C2
  C100: RCS RFF:C5 DTM:C5 FTX:C5
  C10: GIS RFF:C1 DTM:C5 GIR:C5 LOC:C2 MEA:C5 QTY:C2 FTX:C5 MOA:C2
UNS CNT:C10
M100: MOA
  C1: RFF DTM:C5
C10: TAX MOA:C9
C15: ALC ALI:C1 MOA:C2 FTX:C1
UNT
"""

# Composites (D96A) first, then segments. an..35 x5 etc. are written out: it is what the
# directory lists, and the count is what the too-many-elements check relies on.
_A35x4 = ", ".join(["an..35"] * 4)
_ELEMENTS_D96A = f"""
S009: an..6!, an..3!, an..3!, an..2!, an..6, an..6, an..6
S010: n..2!, a1
S016: an..14!, an..3, an..3, an..3
C002: an..3, an..3, an..3, an..35
C507: an..3!, an..35, an..3
C534: an..3, an..3, an..3, an..3, an..3, an..3
C272: an..3, an..3, an..3
C273: an..17, an..3, an..3, an..35, an..35, an..3
C107: an..17!, an..3, an..3
C108: an..70!, an..70, an..70, an..70, an..70
C506: an..3!, an..35, an..6, an..35
C082: an..35!, an..3, an..3
C058: an..35!, {_A35x4}
C080: an..35!, {_A35x4}, an..3
C059: an..35!, an..35, an..35, an..35
C819: an..9, an..3, an..3, an..70
C517: an..25, an..3, an..3, an..70
C519: an..25, an..3, an..3, an..70
C553: an..25, an..3, an..3, an..70
C078: an..17, an..35, an..35, an..3
C088: an..11, an..3, an..3, an..17, an..3, an..3, an..70, an..70
C056: an..17, an..35
C076: an..512!, an..3!
C503: an..35, an..3, an..70, an..3
C241: an..3, an..3, an..3, an..35
C533: an..6!, an..3, an..3
C243: an..7, an..3, an..3, an..17
C516: an..3!, n..18, an..3, an..3, an..3
C504: an..3!, an..3, an..3, n..4
C110: an..17!, an..3, an..3, an..35, an..35
C112: an..3!, an..3, an..3, n..3
C501: an..3!, n..10, an..3, an..3, an..3
C220: an..3, an..17
C228: an..8, an..17
C040: an..17, an..3, an..3, an..35
C401: an..3!, an..3!, an..17
C222: an..9, an..3, an..3, an..35, an..3
C100: an..3, an..3, an..3, an..70, an..70
C531: an..3, an..3, an..3
C202: an..17, an..3, an..3, an..35
C402: an..3!, an..35!, an..3, an..35, an..3
C532: an..3, an..3
C502: an..3, an..3, an..3, an..70
C174: an..3!, an..18, n..18, n..18, n..2
C210: an..35!, {_A35x4}, {_A35x4}, an..35
C827: an..7!, an..3, an..3
C208: an..35!, an..35
C186: an..3!, n..15!, an..3
C212: an..35, an..3, an..3, an..3
C829: an..3!, an..6
C509: an..3!, n..15, an..3, an..3, n..9, an..3
C552: an..35, an..3
C214: an..3, an..3, an..3, an..35, an..35
C280: an..3!, n..18, n..18
C128: an..3!, n..15!, n..9, an..3
C270: an..3!, n..18!, an..3
C206: an..35!, an..3, an..3
C279: n..15!, an..3
C960: an..3, an..3, an..3, an..35
C524: an..3, an..3, an..3, an..35
C218: an..7, an..3, an..3
C237: an..17, an..3, an..3, an..3
C224: an..10, an..3, an..3, an..35
C329: an..3, an..3, an..3
C901: an..8!, an..3, an..3
S002: an..35!, an..4, an..35, an..14
S003: an..35!, an..4, an..35, an..14
S011: an..3!, n..3
UNH: an..14!, S009!, an..35, S010, S016, S016, S016
UNT: n..6!, an..14!
UNS: a1!
BGM: C002, an..35, an..3, an..3
DTM: C507!
PAI: C534!
ALI: an..3, an..3, an..3, an..3, an..3, an..3, an..3
IMD: an..3, C272, C273, an..3
FTX: an..3!, an..3, C107, C108, an..3
RFF: C506!
NAD: an..3!, C082, C058, C080, C059, an..35, C819, an..9, an..3
LOC: an..3!, C517, C519, C553, an..3
FII: an..3!, C078, C088, an..3
CTA: an..3, C056
COM: C076!
DOC: C002!, C503, an..3, n..2, n..2
TAX: an..3!, C241, C533, an..15, C243, an..3, an..20
MOA: C516!
CUX: C504, C504, n..12, an..3
PAT: an..3!, C110, C112
PCD: C501!
TDT: an..3!, an..17, C220, C228, C040, an..3, C401, C222, an..3
TOD: an..3, an..3, C100
PAC: n..8, C531, C202, C402, C532
MEA: an..3!, C502, C174, an..3
PCI: an..3, C210, an..3, C827
GIN: an..3!, C208!, C208, C208, C208, C208
QTY: C186!
LIN: n..6, an..3, C212, C829, n..2, an..3
PIA: an..3!, C212!, C212, C212, C212, C212
PRI: C509, an..3
ALC: an..3!, C552, an..3, an..3, C214
RNG: an..3!, C280
RTE: C128!
CNT: C270!
CPS: an..12!, an..12, an..3
GIR: an..3!, C206!, C206, C206, C206, C206
QVR: C279, an..3, C960
HAN: C524, C218
EQD: an..3!, C237, C224, an..3, an..3, an..3
SCC: an..3!, an..3, C329
ERC: C901!
UCI: an..14!, S002!, S003!, an..3!, an..3, a3, S011
UCM: an..14!, S009!, an..3!, an..3, a3, S011
UCS: n..6!, an..3
UCD: an..3!, S011!
UCF: an..14!, S002!, S003!, an..3!, an..3, a3, S011
"""

# Only what D01B changes for the segments above (later lines replace earlier ones).
_CHANGES_D01B = """
C106: an..35, an..9, an..6
C108: an..512!, an..512, an..512, an..512, an..512
C273: an..17, an..3, an..3, an..256, an..256, an..3
C506: an..3!, an..70, an..6, an..70, an..6
C516: an..3!, n..35, an..3, an..3, an..3
C186: an..3!, an..35!, an..3
BGM: C002, C106, an..3, an..3
RFF: C506!
MOA: C516!
QTY: C186!
IMD: an..3, C272, C273, an..3
FTX: an..3!, an..3, C107, C108, an..3, an..3
TAX: an..3!, C241, C533, an..15, C243, an..3, an..20, an..3
COM: C076!*3
"""

MESSAGES: dict[str, dict[str, str]] = {
    "ORDERS": {"D96A": _ORDERS_D96A, "D01B": _ORDERS_D01B},
    "ORDRSP": {"D96A": _ORDRSP_D96A, "D01B": _ORDRSP_D01B},
    "DESADV": {"D96A": _DESADV_D96A, "D01B": _DESADV_D01B},
    "INVOIC": {"D96A": _INVOIC_D96A, "D01B": _INVOIC_D01B},
    "APERAK": {"D96A": _APERAK_D96A},
    "CONTRL": {"3": _CONTRL},
}

_TABLES: dict[str, dict] = {}


def _elements(version: str) -> dict:
    key = "D01B" if version == "D01B" else "D96A"
    if key not in _TABLES:
        text = _ELEMENTS_D96A + (_CHANGES_D01B if key == "D01B" else "")
        _TABLES[key] = parse_elements(_composites_first(text))
    return _TABLES[key]


def _composites_first(text: str) -> str:
    """Order lines so every composite (later definitions winning) precedes every segment."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    comps = [line for line in lines if line[0] in "CS" and line[1].isdigit()]
    segs = [line for line in lines if not (line[0] in "CS" and line[1].isdigit())]
    return "\n".join(comps + segs)


def compiled(message_type: str, version: str) -> MessageDef:
    """Compile one message definition (the registry caches the result)."""
    root, tags = parse_structure(MESSAGES[message_type][version], _FRAGMENTS, x12=False)
    return MessageDef("edifact", message_type, version, root, tags, _elements(version))
