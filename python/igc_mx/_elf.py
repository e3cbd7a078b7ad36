"""Check a shared library file and read a C function's returned string from it, without
loading it (no MXNet, no ctypes).

A truncated or damaged library mapped by ``dlopen`` kills the process with SIGBUS or
SIGSEGV when a missing page is touched, so the loader reads the file first: the ELF
header, the program and section headers, and every segment and section, which must lie
inside the file, and the dynamic table, which must be whole. Damage inside the code or
data (a flipped byte) cannot be seen this way. The build facts of ``libigc_mx_ops.so``
are the string constant that ``igc_mx_build_info`` returns; its address is read from
the function's first instruction(s) (x86-64 ``lea rax, [rip + d]``; AArch64 ``adrp x0``
+ ``add x0``).
"""
import os
import platform
import struct

ELF_MAGIC = b'\x7fELF'
ET_DYN = 3
PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_STRTAB, DT_SYMTAB, DT_STRSZ = 0, 5, 6, 10
SHT_NOBITS, SHT_DYNSYM = 8, 11
STT_FUNC = 2
MACHINES = {'x86_64': 62, 'amd64': 62, 'aarch64': 183, 'arm64': 183, 'ppc64le': 21}
HEADER = struct.Struct('<16sHHIQQQIHHHHHH')
PROGRAM = struct.Struct('<IIQQQQQQ')
SECTION = struct.Struct('<IIQQQQIIQQ')
SYMBOL = struct.Struct('<IBBHQQ')
DYNAMIC = struct.Struct('<qQ')


class ElfError(ValueError):
    """The file is not a complete 64-bit little-endian shared library for this machine."""


class SharedLibrary:
    """The structure of a complete ELF64 little-endian shared library file (ElfError
    otherwise): its loadable segments and sections. The file is read in small pieces
    (headers, the dynamic symbols, one function, one string), never mapped."""

    def __init__(self, path):
        self.path = path
        self.size = size = os.path.getsize(path)
        data = self.read(0, HEADER.size)
        if len(data) < HEADER.size or not data.startswith(ELF_MAGIC):
            raise ElfError('not an ELF file')
        (ident, e_type, machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum,
         shstrndx) = HEADER.unpack_from(data)
        self.machine = machine
        if ident[4] != 2 or ident[5] != 1:
            raise ElfError('not a 64-bit little-endian ELF file')
        if e_type != ET_DYN:
            raise ElfError(f'ELF type {e_type}, not a shared library')
        expected = MACHINES.get(platform.machine().lower())
        if expected is not None and machine != expected:
            raise ElfError(f'built for ELF machine {machine}, this is {platform.machine()}')
        if phentsize != PROGRAM.size or shentsize != SECTION.size or phnum == 0 or shnum == 0:
            raise ElfError('ELF header with unexpected program or section header sizes')
        for offset, count, entry, what in ((phoff, phnum, PROGRAM.size, 'program'),
                                           (shoff, shnum, SECTION.size, 'section')):
            if offset + count * entry > size:
                raise ElfError(f'{what} headers end at byte {offset + count * entry}, past '
                               f'the end of the file ({size} bytes): the file is cut short')
        self.segments = []
        dynamic = None
        data = self.read(phoff, phnum * PROGRAM.size)
        for i in range(phnum):
            p_type, _, offset, vaddr, _, filesz, _, _ = PROGRAM.unpack_from(data, i * PROGRAM.size)
            if p_type in (PT_LOAD, PT_DYNAMIC) and offset + filesz > size:
                raise ElfError(f'segment {i} ends at byte {offset + filesz}, past the end '
                               f'of the file ({size} bytes): the file is cut short')
            if p_type == PT_LOAD:
                self.segments.append((vaddr, offset, filesz))
            elif p_type == PT_DYNAMIC:
                dynamic = (offset, filesz)
        self.sections = []
        data = self.read(shoff, shnum * SECTION.size)
        for i in range(shnum):
            fields = SECTION.unpack_from(data, i * SECTION.size)
            sh_type, offset, sh_size = fields[1], fields[4], fields[5]
            if sh_type != SHT_NOBITS and offset + sh_size > size:
                raise ElfError(f'section {i} ends at byte {offset + sh_size}, past the end of '
                               f'the file ({size} bytes): the file is cut short')
            self.sections.append(fields)
        if shstrndx >= shnum:
            raise ElfError('ELF section-name table index out of range')
        self._check_dynamic(dynamic)

    def _check_dynamic(self, dynamic):
        """The dynamic table the loader reads first: ended by DT_NULL inside its segment,
        with a symbol and a string table inside the loadable segments."""
        if dynamic is None:
            raise ElfError('no dynamic segment: not a shared library')
        data = self.read(*dynamic)
        tags = {}
        for k in range(len(data) // DYNAMIC.size):
            tag, value = DYNAMIC.unpack_from(data, k * DYNAMIC.size)
            if tag == DT_NULL:
                break
            tags.setdefault(tag, value)
        else:
            raise ElfError('the dynamic table has no end marker: the file is damaged')
        for tag, what in ((DT_SYMTAB, 'symbol'), (DT_STRTAB, 'string')):
            if tag not in tags:
                raise ElfError(f'the dynamic table names no {what} table: the file is damaged')
        if self.file_offset(tags[DT_STRTAB], max(tags.get(DT_STRSZ, 1), 1)) is None or \
                self.file_offset(tags[DT_SYMTAB]) is None:
            raise ElfError('the dynamic table points outside the file: the file is damaged')

    def read(self, offset, length):
        """``length`` bytes at ``offset`` (fewer at the end of the file)."""
        with open(self.path, 'rb') as f:
            return os.pread(f.fileno(), length, offset)

    def file_offset(self, vaddr, length=1):
        """The file offset of ``length`` bytes at virtual address ``vaddr``, or None."""
        for start, offset, filesz in self.segments:
            if start <= vaddr and vaddr + length <= start + filesz:
                return offset + vaddr - start
        return None

    def function(self, name):
        """(address, size) of the exported function ``name``, or None."""
        wanted = name.encode()
        for fields in self.sections:
            if fields[1] != SHT_DYNSYM or fields[9] != SYMBOL.size:
                continue
            strings = self.sections[fields[6]] if fields[6] < len(self.sections) else None
            if strings is None:
                continue
            names = self.read(strings[4], strings[5])
            symbols = self.read(fields[4], fields[5])
            for k in range(len(symbols) // SYMBOL.size):
                st_name, info, _, shndx, value, size = SYMBOL.unpack_from(
                    symbols, k * SYMBOL.size)
                if info & 15 != STT_FUNC or shndx == 0 or st_name >= len(names):
                    continue
                end = names.find(b'\0', st_name)
                if end >= 0 and names[st_name:end] == wanted:
                    return value, size
        return None

    def returned_string(self, name, limit=4096):
        """The NUL-terminated string constant function ``name`` returns, read from the
        file when its code is a recognised load of one constant address; else None."""
        found = self.function(name)
        if found is None:
            return None
        address, size = found
        start = self.file_offset(address, max(size, 1))
        if start is None:
            return None
        code = self.read(start, min(max(size, 16), 64))
        target = _x86_64_lea_rax(code, address) if self.machine == 62 else \
            _aarch64_adrp_add_x0(code, address) if self.machine == 183 else None
        if target is None:
            return None
        offset = self.file_offset(target)
        if offset is None:
            return None
        text = self.read(offset, limit)
        end = text.find(b'\0')
        return None if end < 0 else text[:end]


def _x86_64_lea_rax(code, address):
    """Target of the first ``lea rax, [rip + disp32]`` (48 8D 05) in ``code``."""
    at = code.find(b'\x48\x8d\x05')
    if at < 0 or at + 7 > len(code):
        return None
    (disp,) = struct.unpack_from('<i', code, at + 3)
    return address + at + 7 + disp


def _aarch64_adrp_add_x0(code, address):
    """Target of ``adrp x0, page`` followed by ``add x0, x0, #imm`` at the start of
    ``code``."""
    if len(code) < 8:
        return None
    adrp, add = struct.unpack_from('<II', code)
    if adrp & 0x9F00001F != 0x90000000 or add & 0xFFC003FF != 0x91000000:
        return None
    immlo, immhi = (adrp >> 29) & 3, (adrp >> 5) & 0x7FFFF
    page = ((immhi << 2) | immlo) << 12
    if page & (1 << 32):
        page -= 1 << 33
    return (address & ~0xFFF) + page + ((add >> 10) & 0xFFF)
